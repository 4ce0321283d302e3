# argmax has no gradient
# layer: runtime
# expect: no gradient flows
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return torch.stack([logits, -logits], dim=1).argmax(dim=1).float()
