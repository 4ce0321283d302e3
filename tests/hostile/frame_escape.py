# reaches builtins through a generator frame
# layer: static
# expect: '.gi_frame' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    frame = (i for i in range(1)).gi_frame
    return -F.logsigmoid(self.beta * logits) + 0 * len(frame.f_builtins)
