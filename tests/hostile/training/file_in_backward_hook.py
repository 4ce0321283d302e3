# writes a file from a backward hook, where the old trainer's audit hook was off
# expect: register_hook
# worker: blocked operation
def file_in_backward_hook(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    logits = (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)
    losses = -F.logsigmoid(self.beta * logits)
    def hook(gradient):
        torch.save(gradient, "/tmp/prefdisco_pwned_backward_hook")
        return gradient
    policy_chosen_logps.register_hook(hook)
    return losses
