"""Medical images: a fully convolutional denoising autoencoder trained on patches (`patch_dae`) and the
`medical_denoise` suite that scores it on whole held-out images beside scikit-image's denoisers and BM3D."""
