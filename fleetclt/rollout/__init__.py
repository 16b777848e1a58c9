"""Job rollouts in stages: the plan, the engine with its failure budget, the journal that resumes it."""
