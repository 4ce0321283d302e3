# star import
# layer: static
# expect: 'from math import *' is not allowed
from math import *
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    return -F.logsigmoid(self.beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))) * exp(0)
