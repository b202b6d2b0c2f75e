from fedrl_lightning import AgentPopulation, FederatedTrainer, Reinforce
from fedrl_lightning.population.envs import SimpleVectorEnv
from fedrl_lightning.rollouts.evaluation import evaluate_policy

RANDOM_POLICY_RETURN = 50.0


def test_small_federation_beats_a_random_policy(tmp_path):
    model = Reinforce(hidden_dim=32, lr=0.01, gamma=0.5)
    population = AgentPopulation(num_agents=4)
    trainer = FederatedTrainer(
        num_rounds=10,
        agents_per_round=2,
        episodes_per_round=5,
        eval_episodes=2,
        default_root_dir=str(tmp_path),
        enable_progress_bar=False,
        seed=0,
    )
    trainer.fit(model, population)  # 100 training episodes in all
    returns = evaluate_policy(
        model.policy, SimpleVectorEnv(num_envs=500), list(range(10_000, 10_500)), action_seed=1
    ).returns
    # A random policy scores 50 with a standard error of about 1.3 over 500 episodes.
    assert returns.mean() > RANDOM_POLICY_RETURN + 10
