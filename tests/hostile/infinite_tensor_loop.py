# never returns, busy in torch ops
# layer: runtime
# expect: possible infinite loop
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    x = policy_chosen_logps
    while True:
        x = torch.sin(x) + 1.0
    return x
