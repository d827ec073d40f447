import { renderTable } from '../../lambda/cli/format';

/**
 * Tables and charts as large as the data: no spread of a row list into Math.max (or into push), which
 * overflows the stack at about 100,000 arguments (issue 10 item 9: a replay with that many decisions).
 */

describe('renderTable with very many rows', () => {
  it('renders 200,000 rows, padding each column to its widest cell', () => {
    // Prepare
    const rows = Array.from({ length: 200_000 }, (_, i) => [
      `user-${i}`,
      i % 2 ? 'ALLOW' : 'DEACTIVATE',
      'x',
    ]);

    // Act
    const table = renderTable(['USER', 'ACTION', 'NOTE'], rows);

    // Assess
    const lines = table.split('\n');
    expect(lines).toHaveLength(200_001);
    expect(lines[0]).toBe('USER         ACTION      NOTE');
    expect(lines[200_000]).toBe('user-199999  ALLOW       x');
  });
});
