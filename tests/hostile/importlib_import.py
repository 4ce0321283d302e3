# importlib spelling
# layer: static
# expect: import of 'importlib' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    import importlib
    importlib.import_module('os').system('touch /tmp/prefdisco_pwned_importlib_import')
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(self.beta * logits)
