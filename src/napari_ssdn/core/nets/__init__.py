"""Networks: the blind-spot U-Nets, their receptive fields, the model and its shipped starts."""
