/**
 * What an operator is told when a guest image is missing: there are two kinds, and only one of
 * them runs jobs from real GitHub. The test image's runner is the sim's (src/sim/runner.sh): put
 * in front of github.com it would take no job, so the message must not suggest it alone.
 */
export function buildImageHint(dir = 'DIR'): string {
  return `build one: \`hangar image build runner --out ${dir} --runner-tarball actions-runner-linux-x64-<version>.tar.gz\` ` +
    '(the production image, with GitHub\'s actions/runner: the one for real GitHub; docs/runner-image.md), ' +
    `or \`hangar image build test --out ${dir}\` (the test image, whose runner speaks only to \`hangar sim\`)`;
}
