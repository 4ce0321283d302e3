# torch re-exports the os module as torch.os
# layer: static
# expect: 'torch.os' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    torch.os.system('touch /tmp/prefdisco_pwned_torch_os_attribute')
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(self.beta * logits)
