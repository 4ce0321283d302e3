# never returns; the CPU limit (or the wall clock) must kill it
# layer: runtime
# expect: possible infinite loop
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    while True:
        pass
