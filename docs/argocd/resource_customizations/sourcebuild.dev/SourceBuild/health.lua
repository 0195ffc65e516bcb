-- Health of a sourcebuild.dev SourceBuild: the reading kstatus makes (observedGeneration,
-- Reconciling, Stalled), with Suspended for spec.suspend. Uses only Lua's base library, so it
-- runs as a built-in check and as an argocd-cm override without useOpenLibs.
local hs = {}

local function says(condition)
  if condition.message == nil or condition.message == "" then
    return condition.reason
  end
  return condition.reason .. ": " .. condition.message
end

local status = obj.status
local generation = obj.metadata.generation
if status == nil or status.observedGeneration == nil
    or (generation ~= nil and status.observedGeneration ~= generation) then
  hs.status = "Progressing"
  if generation ~= nil then
    hs.message = "Waiting for the operator to observe generation " .. generation
  else
    hs.message = "Waiting for the operator to observe the spec"
  end
  return hs
end

local conditions = {}
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    conditions[condition.type] = condition
  end
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  if conditions.Succeeded ~= nil and conditions.Succeeded.message ~= "" then
    hs.message = conditions.Succeeded.message
  else
    hs.message = "spec.suspend is true: no build runs"
  end
  return hs
end

local stalled = conditions.Stalled
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = says(stalled)
  return hs
end

local reconciling = conditions.Reconciling
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = says(reconciling)
  return hs
end

local ready = conditions.Ready
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end

-- Written by an operator older than Reconciling and Stalled: a failure with no retry due is
-- final there too.
local succeeded = conditions.Succeeded
if status.phase == "Failed" and status.nextAttemptTime == nil and succeeded ~= nil then
  hs.status = "Degraded"
  hs.message = says(succeeded)
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for the build's outcome"
return hs
