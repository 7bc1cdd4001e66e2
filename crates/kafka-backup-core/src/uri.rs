//! Percent-encoding of everything but RFC 3986's unreserved characters, as AWS SigV4 canonical
//! requests and S3 query strings want it (`percent-encoding` with that character set).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Every byte but `A-Z a-z 0-9 - _ . ~` is encoded.
const RESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `text` with every byte outside the unreserved characters as `%XX` (upper-case hex).
pub fn uri_encode(text: &str) -> String {
    utf8_percent_encode(text, RESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreserved_characters_stay() {
        assert_eq!(uri_encode("kafka-cluster:Connect"), "kafka-cluster%3AConnect");
        assert_eq!(uri_encode("a/b=c d~_.-Z9"), "a%2Fb%3Dc%20d~_.-Z9");
        assert_eq!(uri_encode("é"), "%C3%A9");
    }
}
