"""Names shared by the core, the command line and the widgets (torch-free on purpose)."""

NOISE_MODELS = ("gaussian", "poisson", "poisson-gaussian", "impulse")
#: Parameters of each noise model (data units): Gaussian std, Poisson lambda
#: (variance = mean / lambda), camera model variance = a * mean + b, impulse fraction.
NOISE_PARAMS = {
    "gaussian": ("sigma",),
    "poisson": ("lam",),
    "poisson-gaussian": ("a", "b"),
    "impulse": ("alpha",),
}
#: Width presets: name -> (encoder, decoder, depth). "paper" is Laine et al.'s network;
#: "light" trains usefully in minutes on a CPU; "tiny" is for tests.
WIDTHS = {"paper": (48, 96, 5), "light": (32, 64, 4), "tiny": (16, 32, 3)}
#: ssdn: blind-spot + Bayesian posterior; mu-only: blind-spot trained with L2 to the noisy
#: input (the "no Bayes" / Noise2Void-like baseline); supervised: plain U-Net, L2 to clean.
MODES = ("ssdn", "mu-only", "supervised")
#: What inference can return.
OUTPUTS = ("posterior-mean", "prior-mean", "posterior-std", "residual")
