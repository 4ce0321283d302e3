def focal(logits, targets):
    """Focal loss with gamma 2 (Lin et al., 2017): cross-entropy down-weighted on examples already fitted."""
    log_p = F.log_softmax(logits, dim=-1).gather(1, targets.unsqueeze(1)).squeeze(1)
    p = torch.exp(log_p)
    return -((1 - p) ** 2) * log_p
