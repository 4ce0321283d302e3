# compiles and loads native code
# layer: static
# expect: 'torch.utils' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    torch.utils.cpp_extension.load_inline('pwned', cpp_sources='int x;')
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(self.beta * logits)
