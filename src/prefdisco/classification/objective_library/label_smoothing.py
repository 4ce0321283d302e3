def label_smoothing(logits, targets):
    """Cross-entropy against targets smoothed towards uniform by 0.1 (Szegedy et al., 2016)."""
    return F.cross_entropy(logits, targets, reduction="none", label_smoothing=0.1)
