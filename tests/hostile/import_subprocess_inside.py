# imports subprocess inside the function
# layer: static
# expect: import of 'subprocess' is not allowed
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    import subprocess
    subprocess.run(['touch', '/tmp/prefdisco_pwned_import_subprocess_inside'])
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(self.beta * logits)
