"""The adversarial family: a generator and a discriminator trained against each other (`gan`, `dcgan`, `cgan`)."""
