def confidence_penalty(logits, targets):
    """Cross-entropy minus 0.1 x the predictive entropy: penalises over-confident predictions (Pereyra et al., 2017)."""
    log_probs = F.log_softmax(logits, dim=-1)
    entropy = -(torch.exp(log_probs) * log_probs).sum(dim=-1)
    return F.cross_entropy(logits, targets, reduction="none") - 0.1 * entropy
