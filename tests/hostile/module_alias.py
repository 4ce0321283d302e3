# stores a module in a variable to dodge attribute checks
# layer: static
# expect: may only be used as torch.<attribute>
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    t = torch
    return -F.logsigmoid(self.beta * logits)
