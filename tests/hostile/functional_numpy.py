# torch.nn.functional re-exports numpy as F.np
# layer: static
# expect: 'F.np' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    F.np.save('/tmp/prefdisco_pwned_functional_numpy', F.np.zeros(3))
    return -F.logsigmoid(self.beta * logits)
