# torch.from_file maps files into tensors
# layer: static
# expect: 'torch.from_file' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    raw = torch.from_file('/etc/passwd', size=16, dtype=torch.uint8)
    return -F.logsigmoid(self.beta * logits) + 0 * raw.sum()
