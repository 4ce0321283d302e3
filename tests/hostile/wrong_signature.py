# renamed arguments
# layer: static
# expect: the function must take exactly (self, policy_chosen_logps
def objective(self, chosen, rejected, ref_chosen, ref_rejected):
    return -F.logsigmoid(self.beta * ((chosen - rejected) - (ref_chosen - ref_rejected)))
