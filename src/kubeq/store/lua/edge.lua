-- Record workflow edges on one job's hash, for people (``kubeq job ID``, ``Job.edges()``):
-- its parents (depends_on, a callback's parent, a chord's members) or its children. They are
-- a view, not the mechanism (depend.lua, resolve.lua and the hand-off are): a lost entry
-- changes nothing that runs. KEYS: the job's hash. ARGV: field ('parents' or 'children'),
-- the most entries kept, then entries "<queue>/<id>". Returns how many were added.
local field, max = ARGV[1], int(ARGV[2])
if field ~= 'parents' and field ~= 'children' then
  error('kubeq: edge.lua writes the field parents or children, not ' .. tostring(field))
end
local entries = {}
for i = 3, #ARGV do entries[#entries + 1] = ARGV[i] end
return add_edges(KEYS[1], field, max or 0, entries)
