extension CorpusInfo {
    /// The description of data generated on the fly rather than read from a corpus file (a task):
    /// its name in place of a path, its tokenizer, and no stored tokens.
    public static func generated(name: String, tokenizer: any Tokenizer) -> CorpusInfo {
        CorpusInfo(path: name, formatVersion: 0, vocabSize: tokenizer.vocabSize, tokenizer: tokenizer,
                   trainTokens: 0, valTokens: 0, dtype: .uint16, source: "", created: "")
    }
}
