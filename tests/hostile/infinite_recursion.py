# unbounded recursion
# layer: runtime
# expect: RecursionError
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    def again(n):
        return again(n + 1)
    return again(0)
