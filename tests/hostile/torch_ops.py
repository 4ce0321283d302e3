# torch.ops reaches raw aten operators
# layer: static
# expect: 'torch.ops' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    x = torch.ops.aten.from_file('/etc/passwd', None, 10)
    return -F.logsigmoid(self.beta * logits) + 0 * x.sum()
