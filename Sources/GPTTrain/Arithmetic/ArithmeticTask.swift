import GPTCore
import GPTData

// MARK: - The task

/// The arithmetic task (`task = "arithmetic"`): problems drawn on the fly, never stored.
///
/// Every problem is a pure function of (seed, where it is used): training sample `u` of step `s`,
/// row `b` of evaluation batch `k`, or test problem `k`; so a resumed run, or a run on N ranks,
/// sees exactly the problems of an uninterrupted one-rank run with N times the batch. Each operand
/// has a length drawn uniformly from `task_min_digits...task_max_digits`, then a value uniform among
/// the numbers of that length (0...9 for one digit; a divisor is at least 1); the operator is drawn
/// uniformly from the characters of `task_operators` (a repeated character weighs more). Training
/// and the training-split loss draw only problems outside the held-out set (`Problem.isHeldOut`),
/// the test set and the val-split loss only problems inside it.
public struct ArithmeticTask: Sendable {
    public let operators: [ArithmeticOperator]
    public let minDigits: Int, maxDigits: Int
    public let format: ArithmeticFormat
    /// Targets -1 on the prompt, so only the completion is learned.
    public let maskPrompt: Bool
    public let seed: UInt64

    public init(operators: [ArithmeticOperator], minDigits: Int, maxDigits: Int, format: ArithmeticFormat,
                maskPrompt: Bool = true, seed: UInt64 = 1337) {
        precondition(!operators.isEmpty && minDigits >= 1 && minDigits <= maxDigits, "not a task specification")
        self.operators = operators; self.minDigits = minDigits; self.maxDigits = maxDigits
        self.format = format; self.maskPrompt = maskPrompt; self.seed = seed
    }

    /// The task of a config (nil when `task = "none"`); the config must be valid.
    public init?(_ c: TrainConfig) {
        guard c.task == .arithmetic else { return nil }
        self.init(operators: c.taskOperators.compactMap { ArithmeticOperator(rawValue: $0) },
                  minDigits: c.taskMinDigits, maxDigits: c.taskMaxDigits,
                  format: ArithmeticFormat(reverse: c.taskReverse, pad: c.taskPad, padDigits: c.taskMaxDigits,
                                           traces: c.taskTraces),
                  maskPrompt: c.taskMaskPrompt, seed: UInt64(c.seed))
    }

    /// This task with operands of `min...max` digits (padding, if any, to `max`): out-of-distribution tests.
    public func withDigits(_ min: Int, _ max: Int) -> ArithmeticTask {
        var f = format
        f.padDigits = Swift.max(f.padDigits, max)
        return ArithmeticTask(operators: operators, minDigits: min, maxDigits: max, format: f, maskPrompt: maskPrompt,
                              seed: seed)
    }

    /// One line for the run log: what is drawn and how it is written.
    public var summary: String {
        let ops = ArithmeticOperator.allCases.filter(operators.contains).map { String($0.rawValue) }.joined()
        return "arithmetic problems generated on the fly: operators \(ops), operands of \(minDigits)...\(maxDigits) digits, "
            + "answers \(format.reverse ? "reversed" : "in plain order")\(format.pad ? ", zero-padded" : "")"
            + "\(format.traces ? ", with worked steps" : ""), prompt \(maskPrompt ? "masked" : "in the loss"); "
            + "1 problem in 10 held out for the test set; rows of \(rowLength) positions"
    }

    // MARK: Drawing problems

    /// Training sample `u` of step `step` (counted over every rank and micro-step of the step).
    public func trainingProblem(step: Int, sample u: Int) -> Problem {
        var rng = SplitMix64(seed: SeedStream.taskTraining.seed(seed, step, u))
        return draw(&rng, heldOut: false)!
    }

    /// Row `b` of evaluation batch `k` of `split` at `step`: training problems, or held-out ones for val.
    public func evaluationProblem(split: EvalSplit, step: Int, batch k: Int, row b: Int) -> Problem {
        var rng = SplitMix64(seed: SeedStream.taskEvaluation.seed(seed, step, split.rawValue, k, b))
        return draw(&rng, heldOut: split == .val)!
    }

    /// Problem `k` of the test set: held-out problems, the same at every evaluation of a run.
    public func testProblem(_ k: Int) -> Problem? {
        var rng = SplitMix64(seed: SeedStream.taskTest.seed(seed, k))
        return draw(&rng, heldOut: true)
    }

    /// The first problem from `rng` inside (or outside) the held-out set; nil if none turns up
    /// in 100,000 draws (a problem space too small to have a held-out problem).
    func draw(_ rng: inout SplitMix64, heldOut: Bool) -> Problem? {
        for _ in 0..<100_000 {
            let op = operators[rng.nextInt(below: operators.count)]
            var a = number(&rng, atLeast: 0), b = number(&rng, atLeast: op == .divide ? 1 : 0)
            if op == .subtract && a < b { swap(&a, &b) }
            let p = Problem(a, op, b)
            if p.isHeldOut == heldOut { return p }
        }
        return nil
    }

    /// A number of a length uniform in minDigits...maxDigits, uniform among the numbers of that length.
    private func number(_ rng: inout SplitMix64, atLeast low: Int) -> Int {
        let n = minDigits + rng.nextInt(below: maxDigits - minDigits + 1)
        let lo = n == 1 ? low : power10(n - 1), hi = power10(n)
        return lo + rng.nextInt(below: hi - lo)
    }

    // MARK: Encoding

    /// The tokens of a problem (prompt then completion) and the prompt's length.
    public func encode(_ p: Problem) -> (tokens: [Int32], promptLength: Int) {
        let prompt = p.prompt(format)
        return (ArithmeticVocabulary.tokenizer.encode(prompt + p.completion(format)), prompt.unicodeScalars.count)
    }

    /// Row `row` of a (B, T) batch: the problem's tokens as inputs and their successors as targets;
    /// targets -1 at every position that predicts a prompt token (when masking) and on the padding
    /// after the end marker (inputs there: the end marker).
    public func fill(_ batch: TokenBatch, row: Int, with p: Problem) {
        let (tokens, promptLength) = encode(p)
        let T = batch.T, n = tokens.count - 1
        precondition(n <= T, "problem \(p) needs \(n) positions, the batch has \(T)")
        let inputs = batch.inputs + row * T, targets = batch.targets + row * T
        for t in 0..<T {
            inputs[t] = t < n ? tokens[t] : ArithmeticVocabulary.endToken
            targets[t] = t < n && !(maskPrompt && t < promptLength - 1) ? tokens[t + 1] : -1
        }
    }

    /// The targets of a problem's row: every position but the prompt's (when masking) and the padding.
    public func targetCount(_ p: Problem) -> Int {
        let (tokens, promptLength) = encode(p)
        return tokens.count - 1 - (maskPrompt ? promptLength - 1 : 0)
    }

    // MARK: Lengths

    /// Tokens of the longest problem (prompt, completion and end marker) of this task.
    public var longestProblem: Int {
        var longest = 0
        for op in Set(operators) {
            for na in minDigits...maxDigits {
                for nb in minDigits...maxDigits { longest = max(longest, Self.longest(op, na, nb, format)) }
            }
        }
        return longest
    }

    /// The positions a training row needs: the longest problem but its last token.
    public var rowLength: Int { longestProblem - 1 }

    /// An upper bound on the tokens of a problem with operands of na and nb digits (exact for + - *
    /// without traces: 99...9 reaches it).
    static func longest(_ op: ArithmeticOperator, _ na: Int, _ nb: Int, _ f: ArithmeticFormat) -> Int {
        let wa = f.pad ? f.padDigits : na, wb = f.pad ? f.padDigits : nb
        let prompt = wa + wb + 2
        var completion: Int
        switch op {
        case .add: completion = f.pad ? f.padDigits + 1 : max(na, nb) + 1
        case .subtract: completion = f.pad ? f.padDigits : max(na, nb)
        case .multiply:
            completion = f.pad ? 2 * f.padDigits : na + nb
            if f.traces && wb > 1 {
                // Partial products (at most na + 1 + j digits), the running sums between them, '+' and '='.
                completion += (0..<wb).reduce(0) { $0 + na + 1 + $1 } + (1..<(wb - 1)).reduce(0) { $0 + na + 1 + $1 }
                completion += (wb - 1) + (wb - 2) + 1
            }
        case .divide:
            completion = (f.pad ? 2 * f.padDigits : max(1, na - nb + 1) + nb) + 1
            // Steps `c:q-p=r` (c and p below 10 b: at most nb + 1 digits; r below b), ';' between, '=' after.
            let steps = max(1, wa - nb + 1)
            if f.traces { completion += steps * (3 * nb + 6) + (steps - 1) + 1 }
        }
        return prompt + completion + 1
    }
}

// MARK: - Batch source

/// The arithmetic task's batches: one problem per row, training rows from the training problems
/// of (seed, step, sample), evaluation rows from the training (train split) or held-out (val split)
/// problems of (seed, step, batch, row). No state: nothing to checkpoint.
public final class ArithmeticBatches: BatchSource {
    public let task: ArithmeticTask
    let placement: SamplePlacement

    public init(task: ArithmeticTask, placement: SamplePlacement) {
        self.task = task
        self.placement = placement
    }

    public func fillTraining(_ batch: TokenBatch, step: Int, micro: Int) throws {
        let first = placement.firstSample(micro: micro)
        for b in 0..<batch.B { task.fill(batch, row: b, with: task.trainingProblem(step: step, sample: first + b)) }
    }

    /// Counted from the step's problems, which every rank can draw.
    public func targetCount(step: Int) -> Int? {
        (0..<placement.samplesPerStep).reduce(0) { $0 + task.targetCount(task.trainingProblem(step: step, sample: $1)) }
    }

    public func fillEvaluation(_ batch: TokenBatch, split: EvalSplit, step: Int, index k: Int) throws {
        for b in 0..<batch.B { task.fill(batch, row: b, with: task.evaluationProblem(split: split, step: step, batch: k, row: b)) }
    }
}
