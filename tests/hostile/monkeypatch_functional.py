# monkeypatches torch for everyone else in the process
# layer: static
# expect: assigning to or deleting attributes ('F.logsigmoid')
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    F.logsigmoid = torch.sigmoid
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(self.beta * logits)
