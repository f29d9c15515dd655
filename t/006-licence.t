# The licence: LICENSE at the top is BSD-2-Clause (as nginx's), and every
# source file of the project says so in its header, next to the copyright
# line: the C sources and their Makefiles, the addon's config, the test
# libraries t/lib/Ingest, and the scripts of ci/ and .ci/.  Bundled or
# fetched code (t/lib/bundled, build/) is not ours to mark.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Find;
use Test::More;

my $top = abs_path(__FILE__) =~ s{/t/006-licence\.t$}{}r;

# LICENSE: the BSD-2-Clause text, the project's copyright

my $licence = '';
if (ok(open(my $in, '<', "$top/LICENSE"), "LICENSE is there")) {
    $licence = do { local $/; <$in> };
    close $in;
}

like($licence, qr/^BSD 2-Clause License\n\nCopyright \(c\) 2026, ngx_ingest developers\nAll rights reserved\.\n/,
     "LICENSE: BSD 2-Clause, copyright ngx_ingest developers, 2026");
like($licence, qr/1\. Redistributions of source code must retain the above copyright notice, this\s+list of conditions and the following disclaimer\./,
     "LICENSE: the first condition");
like($licence, qr/2\. Redistributions in binary form must reproduce the above copyright notice,\s+this list of conditions and the following disclaimer in the documentation\s+and\/or other materials provided with the distribution\./,
     "LICENSE: the second condition");
like($licence, qr/THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"/,
     "LICENSE: the disclaimer");
unlike($licence, qr/3\. /, "LICENSE: two clauses, no third");

# the files: every one found, none left out by accident

my @files;
find({ no_chdir => 1, wanted => sub {
    return unless -f;
    my $rel = substr($_, length($top) + 1);
    return if $rel =~ m{/corpus/};
    push @files, $rel if $rel =~ m{\.(c|h|sh)$} || $rel =~ m{/Makefile$};
} }, "$top/ngx_ingest_module");
find({ no_chdir => 1, wanted => sub {
    return unless -f;
    push @files, substr($_, length($top) + 1);
} }, "$top/ci", "$top/.ci");
push @files, 'config';
push @files, map { substr($_, length($top) + 1) } glob("$top/t/lib/Ingest/*.pm");

cmp_ok(scalar(grep { /\.c$/ } @files), '>', 40, "the C sources are found");
cmp_ok(scalar(grep { m{^ci/} } @files), '>', 15, "ci/'s scripts are found");
cmp_ok(scalar(grep { /\.pm$/ } @files), '>=', 5, "t/lib/Ingest is found");

for my $f (sort @files) {
    open my $fh, '<', "$top/$f" or die "$f: $!";
    my $head = '';
    for (1 .. 12) {
        my $line = <$fh>;
        last unless defined $line;
        $head .= $line;
    }
    close $fh;

    # the comment's own leader: " * ", "# " or "-- "
    like($head, qr/^(?: \*|#|--) Copyright \(C\) ngx_ingest developers\n(?: \*|#|--) SPDX-License-Identifier: BSD-2-Clause\n/m,
         "$f: copyright and SPDX-License-Identifier: BSD-2-Clause");
}

done_testing();
