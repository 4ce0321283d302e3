# TRL's old kto_pair shape (2B,)
# layer: runtime
# expect: twice the batch size
def objective(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    chosen = 1 - torch.sigmoid(self.beta * (policy_chosen_logps - reference_chosen_logps))
    rejected = torch.sigmoid(self.beta * (policy_rejected_logps - reference_rejected_logps))
    return torch.cat([chosen, rejected])
