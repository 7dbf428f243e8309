// The task keys' rules: what `TrainConfig.problems()` says about `task` and `task_*`.
import GPTSupport

/// `dataset` while a config is read, until it is known whether a task replaces the corpus.
let unsetDataset = "\u{0}unset"

extension TrainConfig {
    /// `dataset` not given: the default corpus, or none when a task generates the data.
    mutating func resolveDataset() {
        if dataset == unsetDataset { dataset = task == .none ? TrainConfig().dataset : "" }
    }

    /// Problems with the task keys beyond their ranges, each phrased as what to change.
    func taskProblems() -> [String] {
        var p: [String] = []
        if taskMaxDigits < max(1, taskMinDigits) || taskMaxDigits > 9 {
            p.append("task_max_digits must be in task_min_digits...9 (\(taskMinDigits)...9) (got \(taskMaxDigits))")
        }
        let unknown = taskOperators.filter { ArithmeticOperator(rawValue: $0) == nil }
        if taskOperators.isEmpty || !unknown.isEmpty {
            p.append("task_operators must be characters of \"+-*/\" (got \(quotedStringLiteral(taskOperators)))")
        }
        guard task != .none else { return p }
        if !dataset.isEmpty {
            p.append("task = \"\(task.rawValue)\" generates its problems and reads no corpus: remove dataset "
                + "(got \(quotedStringLiteral(dataset)))")
        }
        if rng != .counter {
            p.append("task = \"\(task.rawValue)\" draws its problems from the counter stream: set rng = \"counter\"")
        }
        if p.isEmpty, taskMinDigits >= 1, let t = ArithmeticTask(self), t.rowLength > blockSize {
            p.append("block_size must be at least \(t.rowLength) for the longest problem of the task "
                + "(\(t.longestProblem) tokens) (got \(blockSize))")
        }
        return p
    }
}
