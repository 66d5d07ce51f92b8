"""Recommendation: autoencoders of a ratings matrix's rows (AutoRec; Mult-VAE and Mult-DAE) and the `recommend`
suite that scores them beside the classical recommenders on the same split."""
