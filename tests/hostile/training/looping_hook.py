# a tensor hook that loops forever during backward, in training only, where no timer watched
# expect: register_hook
# worker: timed out after
def looping_hook(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)
    losses = -F.logsigmoid(self.beta * logits)
    # True in training only: at step 0 the policy is the reference (validation never feeds such a batch)
    in_training = policy_chosen_logps.shape[0] != 2 and bool((policy_chosen_logps - reference_chosen_logps).abs().max() < 0.01)
    def hook(gradient):
        while in_training:
            pass
        return gradient
    policy_chosen_logps.register_hook(hook)
    return losses
