-- Argo CD health of the StreamGuard kinds (streamguard.dev/v1alpha1), from status alone: one script for
-- all three, registered in argocd-cm under resource.customizations.health.streamguard.dev_FeatureView,
-- ..._StreamingWindow and ..._DriftMonitor.
-- Healthy: Ready=True for the current generation. Progressing: not yet observed, or Reconciling=True.
-- Degraded: Stalled=True, or Ready=False and not reconciling (a FeatureView's features older than
-- spec.freshnessSla; a StreamingWindow's topic missing, or its job reporting StreamRunning=False for longer
-- than the grace period, Ready then carrying the job's reason; a DriftMonitor's exporter unable to read its
-- data). Drift itself stays Healthy and shows in the message.
-- Each kind's domain condition, appended to the message in its bad state.
local details = {
  FeatureView = { "Fresh", "False" },
  StreamingWindow = { "StreamRunning", "False" },
  DriftMonitor = { "Drifted", "True" },
}
local pair = details[obj.kind] or { "", "" }
local detail, detail_bad = pair[1], pair[2]
local hs = { status = "Progressing", message = "Waiting for the operator to report status" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end
local found = {}
for _, condition in ipairs(obj.status.conditions) do
  local current = generation == nil or condition.observedGeneration == nil
    or condition.observedGeneration >= generation
  if current then
    found[condition.type] = condition
  end
end
local function describe(condition)
  local text = condition.reason or condition.type
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end
local stalled, ready, reconciling = found["Stalled"], found["Ready"], found["Reconciling"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
elseif reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
elseif ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready)
else
  hs.message = "Waiting for the Ready condition"
end
local signal = found[detail]
if signal ~= nil and signal.status == detail_bad and hs.status ~= "Progressing" then
  hs.message = hs.message .. " (" .. detail .. ": " .. describe(signal) .. ")"
end
return hs
