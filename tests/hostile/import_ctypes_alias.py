# calls libc system() through ctypes
# layer: static
# expect: import of 'ctypes' is not allowed
import ctypes as c
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    c.CDLL(None).system(b'touch /tmp/prefdisco_pwned_import_ctypes_alias')
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(self.beta * logits)
