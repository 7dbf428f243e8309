// The arithmetic task's generator: problems as pure functions of (seed, step, sample), the held-out
// set disjoint from training, answers and worked steps checked against Swift's own arithmetic,
// and the loss masks (-1 targets) exactly on the prompt and the padding.
import GPTCore
import GPTData
import GPTTrain
import XCTest

final class ArithmeticTaskTests: XCTestCase {
    static func task(_ ops: [ArithmeticOperator], _ lo: Int, _ hi: Int, reverse: Bool = true, pad: Bool = false,
                     traces: Bool = false, mask: Bool = true, seed: UInt64 = 1337) -> ArithmeticTask {
        ArithmeticTask(operators: ops, minDigits: lo, maxDigits: hi,
                       format: ArithmeticFormat(reverse: reverse, pad: pad, padDigits: hi, traces: traces),
                       maskPrompt: mask, seed: seed)
    }

    static let all = ArithmeticOperator.allCases

    // MARK: - Determinism

    func testProblemsArePureFunctionsOfSeedStepAndSample() {
        let a = Self.task(Self.all, 1, 3), b = Self.task(Self.all, 1, 3), other = Self.task(Self.all, 1, 3, seed: 7)
        var differ = 0
        for step in 0..<20 {
            for u in 0..<50 {
                XCTAssertEqual(a.trainingProblem(step: step, sample: u), b.trainingProblem(step: step, sample: u))
                if a.trainingProblem(step: step, sample: u) != other.trainingProblem(step: step, sample: u) { differ += 1 }
            }
        }
        XCTAssertGreaterThan(differ, 900, "another seed draws other problems")
        XCTAssertEqual((0..<100).map { a.testProblem($0) }, (0..<100).map { b.testProblem($0) })
    }

    /// N ranks with batch B (and A micro-steps) fill exactly the rows of one rank with batch N*A*B.
    func testBatchesDoNotDependOnTheNumberOfRanks() throws {
        let task = Self.task(Self.all, 1, 3, traces: true)
        let T = task.rowLength
        let one = TokenBatch(B: 8, T: T)
        try ArithmeticBatches(task: task, placement: SamplePlacement(rank: 0, accumulation: 1, batch: 8, worldSize: 1))
            .fillTraining(one, step: 11, micro: 0)
        for rank in 0..<2 {
            let source = ArithmeticBatches(task: task, placement: SamplePlacement(rank: rank, accumulation: 2, batch: 2, worldSize: 2))
            for micro in 0..<2 {
                let part = TokenBatch(B: 2, T: T)
                try source.fillTraining(part, step: 11, micro: micro)
                let first = (rank * 2 + micro) * 2 * T
                XCTAssertEqual(Array(UnsafeBufferPointer(start: part.inputs, count: 2 * T)),
                               Array(UnsafeBufferPointer(start: one.inputs + first, count: 2 * T)), "rank \(rank) micro \(micro)")
                XCTAssertEqual(Array(UnsafeBufferPointer(start: part.targets, count: 2 * T)),
                               Array(UnsafeBufferPointer(start: one.targets + first, count: 2 * T)))
            }
        }
    }

    // MARK: - Held-out set

    /// Training (and the train-split loss) never draws a held-out problem; the test set and the
    /// val-split loss draw nothing else; on one-digit addition, the two sets cover all 100 problems.
    func testHeldOutProblemsNeverOccurInTraining() {
        for task in [Self.task([.add], 1, 1), Self.task(Self.all, 1, 3), Self.task([.multiply, .divide], 2, 2)] {
            for step in 0..<40 {
                for u in 0..<100 { XCTAssertFalse(task.trainingProblem(step: step, sample: u).isHeldOut) }
                XCTAssertFalse(task.evaluationProblem(split: .train, step: step, batch: 1, row: 2).isHeldOut)
                XCTAssertTrue(task.evaluationProblem(split: .val, step: step, batch: 1, row: 2).isHeldOut)
            }
            for k in 0..<500 { XCTAssertTrue(task.testProblem(k)!.isHeldOut) }
        }
        let task = Self.task([.add], 1, 1)
        let trained = Set((0..<200).flatMap { s in (0..<100).map { task.trainingProblem(step: s, sample: $0) } })
        let tested = Set((0..<2000).map { task.testProblem($0)! })
        XCTAssertTrue(trained.isDisjoint(with: tested))
        XCTAssertEqual(trained.count + tested.count, 100, "every one-digit addition is drawn on one side")
        XCTAssertEqual(Double(tested.count), 10, accuracy: 6, "about one problem in ten is held out")
        // Membership depends on the problem alone: the same set for every seed.
        XCTAssertEqual(Set((0..<2000).map { Self.task([.add], 1, 1, seed: 99).testProblem($0)! }), tested)
    }

    // MARK: - Answers and traces

    /// Thousands of random problems of every operator and format: the answer, read back from the
    /// text, and every worked step agree with Swift's arithmetic.
    func testAnswersAndTracesAgreeWithSwiftArithmetic() {
        var checked = 0
        for reverse in [true, false] {
            for pad in [false, true] {
                for traces in [false, true] {
                    let task = Self.task(Self.all, 1, 4, reverse: reverse, pad: pad, traces: traces)
                    for u in 0..<1000 {
                        let p = task.trainingProblem(step: 3, sample: u)
                        check(p, task.format)
                        XCTAssertLessThanOrEqual(task.encode(p).tokens.count, task.longestProblem, "\(p)")
                        checked += 1
                    }
                }
            }
        }
        XCTAssertEqual(checked, 8000)
        // Hand-checked examples of the format (datasets/arithmetic/README.md).
        let traced = ArithmeticFormat(reverse: true, padDigits: 3, traces: true)
        XCTAssertEqual(Problem(123, .add, 45).prompt(traced) + Problem(123, .add, 45).completion(traced), "123+45=861$")
        XCTAssertEqual(Problem(12, .multiply, 34).completion(traced), "84+063=804$")
        XCTAssertEqual(Problem(123, .multiply, 456).completion(traced), "837+0516=8886+00294=88065$")
        XCTAssertEqual(Problem(1234, .divide, 56).completion(traced), "321:2-211=11;411:2-211=2=22r2$")
        XCTAssertEqual(Problem(87, .divide, 6).completion(traced), "8:1-6=2;72:4-42=3=14r3$")
        XCTAssertEqual(Problem(87, .divide, 6).completion(ArithmeticFormat(reverse: false, traces: true)),
                       "8:1-6=2;27:4-24=3=14r3$")
        XCTAssertEqual(Problem(76, .divide, 47).completion(ArithmeticFormat()), "1r92$")
        XCTAssertEqual(Problem(5, .divide, 7).completion(traced), "5:0-0=5=0r5$")
        XCTAssertEqual(Problem(7, .subtract, 7).completion(ArithmeticFormat(reverse: false, pad: true, padDigits: 2)), "00$")
        XCTAssertEqual(Problem(3, .add, 4).prompt(ArithmeticFormat(pad: true, padDigits: 3)), "003+004=")
    }

    private func check(_ p: Problem, _ f: ArithmeticFormat, file: StaticString = #filePath, line: UInt = #line) {
        var text = p.completion(f)
        XCTAssertEqual(text.removeLast(), "$", file: file, line: line)
        let parts = text.split(separator: "=", omittingEmptySubsequences: false).map(String.init)
        let answer = parts.last!, trace = parts.dropLast().joined(separator: "=")
        func value(_ s: String) -> Int { Int(f.reverse ? String(s.reversed()) : s)! }
        switch p.op {
        case .add: XCTAssertEqual(value(answer), p.a + p.b, "\(p)", file: file, line: line)
        case .subtract: XCTAssertEqual(value(answer), p.a - p.b, "\(p)", file: file, line: line)
        case .multiply:
            XCTAssertEqual(value(answer), p.a * p.b, "\(p)", file: file, line: line)
            if f.traces { checkMultiplicationTrace(trace, p, f, value: value, file: file, line: line) }
        case .divide:
            let qr = answer.split(separator: "r").map(String.init)
            XCTAssertEqual([Int(qr[0])!, value(qr[1])], [p.a / p.b, p.a % p.b], "\(p)", file: file, line: line)
            if f.traces { checkDivisionTrace(trace, p, value: value, file: file, line: line) }
        }
        if !f.traces || p.op == .add || p.op == .subtract { XCTAssertEqual(parts.count, 1, "\(p): \(text)", file: file, line: line) }
        if f.pad { XCTAssertEqual(p.prompt(f).count, 2 * f.padDigits + 2, file: file, line: line) }
    }

    /// `p0+p1=s1+p2=s2...+p_last`: p_j = a * (digit j of b) * 10^j, s_j the running sum.
    private func checkMultiplicationTrace(_ trace: String, _ p: Problem, _ f: ArithmeticFormat, value: (String) -> Int,
                                          file: StaticString, line: UInt) {
        let digits = String(f.pad ? String(repeating: "0", count: max(0, f.padDigits - String(p.b).count)) + String(p.b)
                            : String(p.b)).reversed().map { Int(String($0))! }
        guard digits.count > 1 else { XCTAssertEqual(trace, "", file: file, line: line); return }
        let terms = trace.split(separator: "+").map(String.init)
        XCTAssertEqual(terms.count, digits.count, "\(p): \(trace)", file: file, line: line)
        var total = 0
        for (j, term) in terms.enumerated() {
            let pieces = term.split(separator: "=").map(String.init)
            let partial = p.a * digits[j] * Int(pow(10, Double(j)))
            XCTAssertEqual(value(pieces[0]), partial, "\(p) step \(j)", file: file, line: line)
            total += partial
            if j > 0 && j < terms.count - 1 { XCTAssertEqual(value(pieces[1]), total, "\(p) sum \(j)", file: file, line: line) }
        }
    }

    /// `c:q-p=r` per digit from the first prefix >= b (the whole dividend when a < b): c = 10 r_prev + digit,
    /// q = c / b < 10, p = q b, r = c - p; c, p and r in the format's digit order.
    private func checkDivisionTrace(_ trace: String, _ p: Problem, value: (String) -> Int, file: StaticString, line: UInt) {
        let steps = trace.split(separator: ";").map { s -> (c: Int, q: Int, p: Int, r: Int) in
            let colon = s.split(separator: ":"), minus = colon[1].split(separator: "-"), equals = minus[1].split(separator: "=")
            XCTAssertEqual(minus[0].count, 1, "one quotient digit per step: \(s)", file: file, line: line)
            return (value(String(colon[0])), Int(minus[0])!, value(String(equals[0])), value(String(equals[1])))
        }
        let digits = String(p.a).map { Int(String($0))! }
        func prefix(_ n: Int) -> Int { digits.prefix(n).reduce(0) { 10 * $0 + $1 } }
        let first = digits.count - steps.count + 1
        XCTAssertTrue(first >= 1 && prefix(first - 1) < p.b, "\(p): the steps start at the first prefix >= b", file: file, line: line)
        XCTAssertTrue(prefix(first) >= p.b || (steps.count == 1 && p.a < p.b), "\(p): \(trace)", file: file, line: line)
        var quotient = 0, r = 0
        for (i, step) in steps.enumerated() {
            XCTAssertEqual(step.c, i == 0 ? prefix(first) : 10 * r + digits[first - 1 + i], "\(p) step \(i)", file: file, line: line)
            XCTAssertTrue(step.q == step.c / p.b && step.p == step.q * p.b && step.r == step.c - step.p && step.r < p.b,
                          "\(p) step \(i): \(step)", file: file, line: line)
            quotient = 10 * quotient + step.q
            r = step.r
        }
        XCTAssertEqual(quotient, p.a / p.b, "\(p)", file: file, line: line)
        XCTAssertEqual(r, p.a % p.b, "\(p)", file: file, line: line)
    }

    /// The length bound is reached by 99...9 for + - * (so rows waste no position).
    func testLongestProblemIsExactForAdditionSubtractionAndMultiplication() {
        let f = ArithmeticFormat(reverse: true, padDigits: 3)
        for (op, p) in [(ArithmeticOperator.add, Problem(999, .add, 999)), (.subtract, Problem(999, .subtract, 100)),
                        (.multiply, Problem(999, .multiply, 999))] {
            let task = ArithmeticTask(operators: [op], minDigits: 1, maxDigits: 3, format: f)
            XCTAssertEqual(task.encode(p).tokens.count, task.longestProblem, "\(op)")
        }
        XCTAssertEqual(Self.task([.add], 3, 3, pad: true).rowLength, 12, "999+999=8991$ has 13 tokens")
    }

    // MARK: - Targets

    /// Targets are -1 exactly where the next token is part of the prompt (when masking) and after
    /// the end marker; everywhere else they are the next token of the problem.
    func testTargetsAreMaskedExactlyOnPromptAndPadding() throws {
        for mask in [true, false] {
            let task = Self.task(Self.all, 1, 3, traces: true, mask: mask)
            let B = 64, T = task.rowLength
            let batch = TokenBatch(B: B, T: T)
            let source = ArithmeticBatches(task: task, placement: SamplePlacement(rank: 0, accumulation: 1, batch: B, worldSize: 1))
            try source.fillTraining(batch, step: 2, micro: 0)
            var padded = 0
            for b in 0..<B {
                let p = task.trainingProblem(step: 2, sample: b)
                let (tokens, promptLength) = task.encode(p)
                for t in 0..<T {
                    let target = batch.targets[b * T + t], input = batch.inputs[b * T + t]
                    if t >= tokens.count - 1 {
                        XCTAssertEqual(target, -1, "padding of \(p)")
                        XCTAssertEqual(input, ArithmeticVocabulary.endToken)
                        padded += 1
                    } else {
                        XCTAssertEqual(input, tokens[t])
                        XCTAssertEqual(target, mask && t < promptLength - 1 ? -1 : tokens[t + 1], "\(p) position \(t)")
                    }
                }
            }
            XCTAssertGreaterThan(padded, 0, "problems of several lengths need padding")
        }
    }
}
