// Settings shared by the tests that train on the arithmetic task.
/// The settings of a run that learns one-digit addition in seconds.
public enum ArithmeticRuns {
    public static let oneDigit = ["task=arithmetic", "task_min_digits=1", "task_max_digits=1", "n_layer=2", "n_head=2",
                                  "n_embd=64", "block_size=8", "batch_size=64", "max_iters=450", "eval_interval=150",
                                  "eval_iters=4", "sample_tokens=0", "dropout=0", "warmup_iters=20", "lr_decay_iters=450",
                                  "learning_rate=3e-3", "min_lr=3e-4", "weight_decay=0", "task_test_problems=200",
                                  "threads=1", "log_interval=50"]
}
