# an exception whose message is 10 MB
# layer: runtime
# expect: more characters]
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    raise ValueError('A' * 10**7)
