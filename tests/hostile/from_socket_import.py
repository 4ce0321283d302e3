# opens a network connection
# layer: static
# expect: import from 'socket' is not allowed
from socket import socket
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    s = socket(); s.connect(('198.51.100.1', 80))
    logits = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(self.beta * logits)
