# starts a new process
# layer: static
# expect: 'torch.multiprocessing' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    torch.multiprocessing.Process(target=abs, args=(1,)).start()
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(self.beta * logits)
