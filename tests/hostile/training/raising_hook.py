# a tensor hook that raises during backward, outside the guarded call of the old trainer
# expect: register_hook
# worker: the objective raised RuntimeError
def raising_hook(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)
    losses = -F.logsigmoid(self.beta * logits)
    def hook(gradient):
        raise RuntimeError("raised in a backward hook")
    policy_chosen_logps.register_hook(hook)
    return losses
