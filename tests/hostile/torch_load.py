# torch.load unpickles files
# layer: static
# expect: 'torch.load' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    payload = torch.load('/etc/passwd', weights_only=False)
    return -F.logsigmoid(self.beta * logits)
