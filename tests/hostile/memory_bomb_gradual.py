# grows 400 MB of address space at a time until the memory limit stops it
# layer: runtime
# expect: MemoryError: exceeded the
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    hoard = []
    while True:
        hoard.append(torch.zeros(10**8))
    return policy_chosen_logps
