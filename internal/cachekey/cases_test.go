package cachekey_test

// urlCase is one real-world URL and the request a browser sends for it.
// errPart names the part Parse must refuse ("" means valid).
type urlCase struct {
	in        string
	host      string // canonical host
	port      string // "" for the default port
	pathQuery string // request target (Varnish req.url)
	errPart   string
}

// longQuery is a tracking-style query of the kind release pipelines warm.
const longQuery = "utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale_2024&ids=1,2,3&sort=-date&page=2&size=50" +
	"&redirect=https%3A%2F%2Fexample.org%2Fpath%3Fa%3D1%26b%3D2&q=a+b+c&empty=&flag&x=1&x=2&ref=日本"

const longQueryCanon = "utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale_2024&ids=1,2,3&sort=-date&page=2&size=50" +
	"&redirect=https%3A%2F%2Fexample.org%2Fpath%3Fa%3D1%26b%3D2&q=a+b+c&empty=&flag&x=1&x=2&ref=%E6%97%A5%E6%9C%AC"

// urlCases are checked by TestParseTable; chromium_test.go loads the same
// URLs in headless Chromium and testdata/chromium.json records what it sent.
var urlCases = []urlCase{
	// Hosts: case, ports, trailing dot, underscores.
	{in: "http://example.com", host: "example.com", pathQuery: "/"},
	{in: "http://Example.COM/Index.HTML", host: "example.com", pathQuery: "/Index.HTML"},
	{in: "HTTP://WWW.Example.com:80/a", host: "www.example.com", pathQuery: "/a"},
	{in: "https://example.com:443/", host: "example.com", pathQuery: "/"},
	{in: "https://example.com:8443/x", host: "example.com", port: "8443", pathQuery: "/x"},
	{in: "http://example.com:080/x", host: "example.com", pathQuery: "/x"},
	{in: "http://example.com:/x", host: "example.com", pathQuery: "/x"},
	{in: "http://example.com:8080/x", host: "example.com", port: "8080", pathQuery: "/x"},
	{in: "http://EXAMPLE.com./x", host: "example.com.", pathQuery: "/x"},
	{in: "http://my_host.example.com/", host: "my_host.example.com", pathQuery: "/"},
	{in: "  http://example.com/trim  ", host: "example.com", pathQuery: "/trim"},
	// Scripts in paths and queries: UTF-8, upper-case hex.
	{in: "http://example.com/画像/a.png", host: "example.com", pathQuery: "/%E7%94%BB%E5%83%8F/a.png"},
	{in: "http://example.com/%E7%94%BB%E5%83%8F/a.png", host: "example.com", pathQuery: "/%E7%94%BB%E5%83%8F/a.png"},
	{in: "http://example.com/%e7%94%bb%e5%83%8f/a.png", host: "example.com", pathQuery: "/%e7%94%bb%e5%83%8f/a.png"},
	{in: "http://example.com/q?name=日本", host: "example.com", pathQuery: "/q?name=%E6%97%A5%E6%9C%AC"},
	{in: "http://example.com/이미지/사진.jpg", host: "example.com", pathQuery: "/%EC%9D%B4%EB%AF%B8%EC%A7%80/%EC%82%AC%EC%A7%84.jpg"},
	{in: "http://example.com/Новости/файл.css", host: "example.com", pathQuery: "/%D0%9D%D0%BE%D0%B2%D0%BE%D1%81%D1%82%D0%B8/%D1%84%D0%B0%D0%B9%D0%BB.css"},
	{in: "http://example.com/صور/ملف.png?lang=عربي", host: "example.com", pathQuery: "/%D8%B5%D9%88%D8%B1/%D9%85%D9%84%D9%81.png?lang=%D8%B9%D8%B1%D8%A8%D9%8A"},
	{in: "http://example.com/€?€", host: "example.com", pathQuery: "/%E2%82%AC?%E2%82%AC"},
	{in: "http://example.com/😀.png", host: "example.com", pathQuery: "/%F0%9F%98%80.png"},
	{in: "http://example.com/caf%C3%A9/café", host: "example.com", pathQuery: "/caf%C3%A9/caf%C3%A9"},
	// Spaces, %2F, +, unsafe and reserved characters.
	{in: "http://example.com/a b/c d.txt", host: "example.com", pathQuery: "/a%20b/c%20d.txt"},
	{in: "http://example.com/search?q=a b", host: "example.com", pathQuery: "/search?q=a%20b"},
	{in: "http://example.com/a%2Fb/c", host: "example.com", pathQuery: "/a%2Fb/c"},
	{in: "http://example.com/a%2fb", host: "example.com", pathQuery: "/a%2fb"},
	{in: "http://example.com/%41BC", host: "example.com", pathQuery: "/%41BC"},
	{in: "http://example.com/q?x=a+b&y=c%2Bd", host: "example.com", pathQuery: "/q?x=a+b&y=c%2Bd"},
	{in: "http://example.com/a+b.png", host: "example.com", pathQuery: "/a+b.png"},
	{in: "http://example.com/<script>\"x\"`{}", host: "example.com", pathQuery: "/%3Cscript%3E%22x%22%60%7B%7D"},
	{in: "http://example.com/q?a=<b>&c=\"d\"&e='f'", host: "example.com", pathQuery: "/q?a=%3Cb%3E&c=%22d%22&e=%27f%27"},
	{in: "http://example.com/a|b^c[d]~e", host: "example.com", pathQuery: "/a%7Cb%5Ec[d]~e"},
	{in: "http://example.com/q?x={a}|b^c`d", host: "example.com", pathQuery: "/q?x={a}|b^c`d"},
	{in: "http://example.com/a;b=c/d,e:f@g!$&'()*", host: "example.com", pathQuery: "/a;b=c/d,e:f@g!$&'()*"},
	{in: "http://example.com/track?" + longQuery, host: "example.com", pathQuery: "/track?" + longQueryCanon},
	// IPv6 and IPv4.
	{in: "http://[2001:DB8::1]:8080/x", host: "[2001:db8::1]", port: "8080", pathQuery: "/x"},
	{in: "http://[2001:db8:0:0:0:0:0:1]/", host: "[2001:db8::1]", pathQuery: "/"},
	{in: "http://[::ffff:192.0.2.1]/", host: "[::ffff:c000:201]", pathQuery: "/"},
	{in: "https://[::1]:443/", host: "[::1]", pathQuery: "/"},
	{in: "http://0x7f.1/", host: "127.0.0.1", pathQuery: "/"},
	{in: "http://192.168.0.1:8080/a", host: "192.168.0.1", port: "8080", pathQuery: "/a"},
	// IDN hosts.
	{in: "http://例え.jp/a", host: "xn--r8jz45g.jp", pathQuery: "/a"},
	{in: "http://münchen.de/", host: "xn--mnchen-3ya.de", pathQuery: "/"},
	{in: "http://MÜNCHEN.de/", host: "xn--mnchen-3ya.de", pathQuery: "/"},
	{in: "http://xn--mnchen-3ya.de/", host: "xn--mnchen-3ya.de", pathQuery: "/"},
	{in: "http://пример.рф/", host: "xn--e1afmkfd.xn--p1ai", pathQuery: "/"},
	{in: "http://faß.de/", host: "xn--fa-hia.de", pathQuery: "/"},
	{in: "http://例え.jp:8080/画像?x=1#frag", host: "xn--r8jz45g.jp", port: "8080", pathQuery: "/%E7%94%BB%E5%83%8F?x=1"},
	{in: "http://%E4%BE%8B%E3%81%88.jp/", host: "xn--r8jz45g.jp", pathQuery: "/"},
	// Dot segments, empty path, trailing ?, fragments, backslashes.
	{in: "http://example.com/a/./b/../c", host: "example.com", pathQuery: "/a/c"},
	{in: "http://example.com/a/b/..", host: "example.com", pathQuery: "/a/"},
	{in: "http://example.com/../../x", host: "example.com", pathQuery: "/x"},
	{in: "http://example.com/a/%2e%2E/b", host: "example.com", pathQuery: "/b"},
	{in: "http://example.com/a/.%2e", host: "example.com", pathQuery: "/"},
	{in: "http://example.com/a/.", host: "example.com", pathQuery: "/a/"},
	{in: "http://example.com/a/..b/.c", host: "example.com", pathQuery: "/a/..b/.c"},
	{in: "http://example.com/a?", host: "example.com", pathQuery: "/a?"},
	{in: "http://example.com?", host: "example.com", pathQuery: "/?"},
	{in: "http://example.com/a#top", host: "example.com", pathQuery: "/a"},
	{in: "http://example.com/a?b#c?d", host: "example.com", pathQuery: "/a?b"},
	{in: "http://example.com/q?a=../b/./c", host: "example.com", pathQuery: "/q?a=../b/./c"},
	{in: `http://example.com/a\b\c`, host: "example.com", pathQuery: "/a/b/c"},
	{in: "http://example.com//double//slash", host: "example.com", pathQuery: "//double//slash"},
	// Refused.
	{in: "http://example.com/a%zz", errPart: "path"},
	{in: "http://example.com/a%", errPart: "path"},
	{in: "http://example.com/a%2", errPart: "path"},
	{in: "http://example.com/q?x=%G1", errPart: "query"},
	{in: "http://example.com/a\nb", errPart: "url"},
	{in: "http://example.com/a\tb", errPart: "url"},
	{in: "http://example.com/\x7f", errPart: "url"},
	{in: "http://exa mple.com/", errPart: "host"},
	{in: "http://exa%zzmple.com/", errPart: "host"},
	{in: "http://example.com:99999/", errPart: "port"},
	{in: "http://example.com:8o/", errPart: "port"},
	{in: "ftp://example.com/", errPart: "scheme"},
	{in: "example.com/a", errPart: "url"},
	{in: "http://user:pw@example.com/", errPart: "host"},
	{in: "http://[2001:db8::g]/", errPart: "host"},
	{in: "http://[::1/", errPart: "host"},
	{in: "http://a\u200db.com/", errPart: "host"},
	{in: "http://192.168.0.257/", errPart: "host"},
	{in: "http://", errPart: "host"},
}
