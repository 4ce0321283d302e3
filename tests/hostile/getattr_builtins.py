# getattr on __builtins__
# layer: static
# expect: 'getattr' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    opener = getattr(__builtins__, 'open')
    opener('/tmp/prefdisco_pwned_getattr_builtins', 'w').write('x')
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(self.beta * logits)
