import Foundation
import GPTComm
import GPTCore
import GPTData

// MARK: - Report

/// Exact-match accuracy of greedy answers on the held-out test problems.
public struct AccuracyReport: Sendable, Equatable {
    /// Problems answered exactly (completion and end marker) and problems asked.
    public struct Count: Sendable, Equatable {
        public var correct = 0, total = 0
        public var accuracy: Double { total > 0 ? Double(correct) / Double(total) : .nan }
    }

    /// A wrong answer: the prompt, the right completion, the model's.
    public struct Mistake: Sendable, Equatable {
        public var prompt: String, expected: String, got: String
    }

    public var overall = Count()
    /// By operand length (the longer operand's digits).
    public var byDigits: [Int: Count] = [:]
    /// By operator.
    public var byOperator: [ArithmeticOperator: Count] = [:]
    /// A few wrong answers (rank 0's first ones, each problem once).
    public var mistakes: [Mistake] = []

    public var accuracy: Double { overall.accuracy }

    /// "97.5% (1: 100.0%, 2: 99.0%, 3: 95.1%; +: 98.0%)": overall, per length, per operator when several.
    public var summary: String {
        func pct(_ c: Count) -> String { String(format: "%.1f%%", 100 * c.accuracy) }
        var parts = byDigits.keys.sorted().map { "\($0) digit\($0 == 1 ? "" : "s") \(pct(byDigits[$0]!))" }
        if byOperator.count > 1 {
            parts += ArithmeticOperator.allCases.compactMap { op in byOperator[op].map { "\(op.rawValue) \(pct($0))" } }
        }
        return pct(overall) + " of \(overall.total)" + (parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")")
    }

    /// The report's metrics.jsonl fields: `accuracy`, `accuracy_digits_<n>`, `accuracy_<op>`, `test_problems`.
    public var metricFields: [String: MetricValue] {
        var f: [String: MetricValue] = ["accuracy": .double(accuracy), "test_problems": .int(overall.total)]
        for (n, c) in byDigits { f["accuracy_digits_\(n)"] = .double(c.accuracy) }
        for (op, c) in byOperator { f["accuracy_\(op.name)"] = .double(c.accuracy) }
        if !mistakes.isEmpty {
            f["wrong"] = .string(mistakes.map { "\($0.prompt)\($0.expected) got \($0.got)" }.joined(separator: " | "))
        }
        return f
    }
}

// MARK: - Evaluation

/// Greedy decoding (temperature 0, with the key/value cache) of the answers to `problems` test
/// problems of a task, scored by exact match of the whole completion (trace, answer, end marker).
///
/// Rank r answers problems r, r + world, ...; the counts are summed over the ranks (a collective:
/// every rank calls `evaluate`), so every rank returns the same report.
public final class AccuracyEvaluator {
    public let task: ArithmeticTask
    public let model: GPT
    public let comm: Communicator
    public let problems: Int
    /// Wrong answers kept for the report.
    public var mistakesShown = 3
    private let sampler: Sampler

    /// Throws when the model's block_size cannot hold the task's longest problem.
    public init(task: ArithmeticTask, model: GPT, comm: Communicator, problems: Int) throws {
        guard task.longestProblem - 1 <= model.config.blockSize else {
            throw TrainError("problems of up to \(task.maxDigits) digits need \(task.longestProblem - 1) positions, but the "
                + "model's block_size is \(model.config.blockSize); test shorter operands, or train with a larger block_size")
        }
        guard task.testProblem(0) != nil else {
            throw TrainError("the problems of the task have no held-out test problem (too few distinct problems); "
                + "allow more digits or operators")
        }
        self.task = task; self.model = model; self.comm = comm; self.problems = problems
        sampler = Sampler(model: model)
    }

    public func evaluate() -> AccuracyReport {
        let wasTraining = model.training
        model.training = false
        defer { model.training = wasTraining }
        let ops = ArithmeticOperator.allCases, D = task.maxDigits
        // [correct, total] per (operand length, operator), summed over the ranks.
        var counts = [Double](repeating: 0, count: 2 * D * ops.count)
        var mistakes: [AccuracyReport.Mistake] = []
        for k in stride(from: comm.rank, to: problems, by: comm.size) {
            guard let p = task.testProblem(k) else { break }
            let (got, right) = answer(p)
            let cell = 2 * ((p.digits - 1) * ops.count + ops.firstIndex(of: p.op)!)
            counts[cell] += right ? 1 : 0
            counts[cell + 1] += 1
            let prompt = p.prompt(task.format)
            if !right && mistakes.count < mistakesShown && !mistakes.contains(where: { $0.prompt == prompt }) {
                mistakes.append(.init(prompt: prompt, expected: p.completion(task.format), got: got))
            }
        }
        if comm.size > 1 { comm.allreduce(&counts, count: counts.count, op: .sum) }
        var report = AccuracyReport()
        report.mistakes = comm.isRoot ? mistakes : []
        for d in 0..<D {
            for (o, op) in ops.enumerated() where counts[2 * (d * ops.count + o) + 1] > 0 {
                let c = AccuracyReport.Count(correct: Int(counts[2 * (d * ops.count + o)]),
                                             total: Int(counts[2 * (d * ops.count + o) + 1]))
                report.byDigits[d + 1, default: .init()].add(c)
                report.byOperator[op, default: .init()].add(c)
                report.overall.add(c)
            }
        }
        return report
    }

    /// The model's greedy completion of `p`'s prompt (up to the end marker) and whether it is exactly right.
    public func answer(_ p: Problem) -> (completion: String, right: Bool) {
        let tok = ArithmeticVocabulary.tokenizer
        let prompt = tok.encode(p.prompt(task.format)), expected = tok.encode(p.completion(task.format))
        let room = model.config.blockSize + 1 - prompt.count
        let out = sampler.generate(prompt: prompt, maxNewTokens: min(expected.count + 4, room), temperature: 0,
                                   stopAt: ArithmeticVocabulary.endToken)
        return (tok.decode(out), out == expected)
    }
}

extension AccuracyReport.Count {
    mutating func add(_ c: Self) { correct += c.correct; total += c.total }
}
