def kto_pair_loss(self, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    # KTO, paired form (Ethayarajh et al., 2024), as in TRL's former loss_type="kto_pair". TRL returned the chosen
    # and rejected halves concatenated (2B values); their average per pair has the same mean and keeps shape (B,).
    chosen_kl = (policy_chosen_logps - reference_chosen_logps).mean().clamp(min=0)
    rejected_kl = (policy_rejected_logps - reference_rejected_logps).mean().clamp(min=0)
    chosen_logratios = policy_chosen_logps - reference_chosen_logps
    rejected_logratios = policy_rejected_logps - reference_rejected_logps
    chosen_losses = 1 - F.sigmoid(self.beta * (chosen_logratios - rejected_kl))
    rejected_losses = 1 - F.sigmoid(self.beta * (chosen_kl - rejected_logratios))
    losses = (chosen_losses + rejected_losses) / 2
    return losses
