# runs a shell command through os
# layer: static
# expect: import of 'os' is not allowed; only torch, torch.nn.functional and math may be imported
import os
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    os.system('touch /tmp/prefdisco_pwned_import_os')
    return -F.logsigmoid(self.beta * logits)
