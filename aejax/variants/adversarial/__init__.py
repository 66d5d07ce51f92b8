"""The adversarial family: players trained against each other (`gan`, `dcgan`, `stylegan`, `cgan`, `cyclegan`) and
the adversarial autoencoder (`aae`)."""
