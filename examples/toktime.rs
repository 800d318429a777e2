fn main() {
    let t = std::time::Instant::now();
    let bpe = tiktoken_rs::o200k_base_singleton();
    let load = t.elapsed();
    let t = std::time::Instant::now();
    let n = bpe.encode_with_special_tokens(&"You are the first-line support agent for Acme. ".repeat(100)).len();
    println!("load {:?} encode {:?} tokens {n}", load, t.elapsed());
    let t = std::time::Instant::now();
    let c = tiktoken_rs::cl100k_base_singleton();
    println!("cl100k load {:?} {}", t.elapsed(), c.encode_with_special_tokens("hello").len());
}
