# the classic object.__subclasses__() escape
# layer: static
# expect: attributes starting with an underscore are not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    classes = ().__class__.__bases__[0].__subclasses__()
    wrap = [c for c in classes if c.__name__ == '_wrap_close'][0]
    wrap.__init__.__globals__['system']('touch /tmp/prefdisco_pwned_subclasses_escape')
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(self.beta * logits)
