import { describe, expect, test } from 'vitest';
import { cidrContains, cidrsOverlap, formatCidr, parseCidr, parseInterfaceCidr, parseIpv4, type Cidr } from '../../src/domain/cidr.js';

const c = (text: string): Cidr => {
  const p = parseCidr(text);
  if (!p.ok) throw new Error(p.message);
  return p.cidr;
};

describe('parseIpv4', () => {
  test.each<[string, number | undefined]>([
    ['0.0.0.0', 0],
    ['10.213.0.1', 10 * 2 ** 24 + 213 * 2 ** 16 + 1],
    ['255.255.255.255', 2 ** 32 - 1],
    ['256.0.0.1', undefined],
    ['10.0.0', undefined],
    ['10.0.0.1.2', undefined],
    ['010.0.0.1', undefined], // octal to some tools: refused, not guessed
    ['10.0.0.-1', undefined],
    [' 10.0.0.1', undefined],
    ['', undefined],
  ])('%s', (text, want) => expect(parseIpv4(text)).toBe(want));
});

describe('parseCidr', () => {
  test.each<[string, string]>([
    ['10.213.0.0/16', '10.213.0.0/16'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['192.168.1.7/32', '192.168.1.7/32'],
  ])('%s parses', (text, want) => expect(formatCidr(c(text))).toBe(want));

  test.each<[string, string]>([
    ['10.1.2.3/16', '10.1.2.3/16 has host bits set; did you mean 10.1.0.0/16?'],
    ['192.168.1.1/24', '192.168.1.1/24 has host bits set; did you mean 192.168.1.0/24?'],
    ['10.0.0.0/33', 'expected an IPv4 CIDR like 10.1.0.0/16, got "10.0.0.0/33"'],
    ['10.0.0.0', 'expected an IPv4 CIDR like 10.1.0.0/16, got "10.0.0.0"'],
    ['10.0.0.0/08', 'expected an IPv4 CIDR like 10.1.0.0/16, got "10.0.0.0/08"'],
    ['fd00::/8', 'expected an IPv4 CIDR like 10.1.0.0/16, got "fd00::/8"'],
    ['10.0.0.0/', 'expected an IPv4 CIDR like 10.1.0.0/16, got "10.0.0.0/"'],
  ])('%s is refused', (text, message) => expect(parseCidr(text)).toEqual({ ok: false, message }));
});

test('an interface address gives the network it sits on', () => {
  const p = parseInterfaceCidr('192.168.1.10/24');
  expect(p.ok && formatCidr(p.cidr)).toBe('192.168.1.0/24');
  expect(parseInterfaceCidr('192.168.1.10').ok).toBe(false);
});

describe('overlap and containment', () => {
  test.each<[string, string, boolean]>([
    ['10.0.0.0/8', '10.213.0.0/16', true],
    ['10.213.0.0/16', '10.0.0.0/8', true],
    ['10.213.0.0/16', '10.213.0.0/16', true],
    ['10.213.0.0/16', '10.214.0.0/16', false],
    ['10.213.255.252/30', '10.214.0.0/30', false],
    ['0.0.0.0/0', '203.0.113.0/24', true],
  ])('%s and %s: %s', (a, b, want) => expect(cidrsOverlap(c(a), c(b))).toBe(want));

  test('containment includes both ends and nothing past them', () => {
    const r = c('10.213.0.0/16');
    expect(cidrContains(r, parseIpv4('10.213.0.0')!)).toBe(true);
    expect(cidrContains(r, parseIpv4('10.213.255.255')!)).toBe(true);
    expect(cidrContains(r, parseIpv4('10.214.0.0')!)).toBe(false);
    expect(cidrContains(r, parseIpv4('10.212.255.255')!)).toBe(false);
  });
});
