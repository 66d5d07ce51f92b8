"""Deep clustering: DEC and IDEC (Xie et al. 2016; Guo et al. 2017), the Student-t soft assignment of an
autoencoder's codes to cluster centres sharpened toward its target distribution."""
