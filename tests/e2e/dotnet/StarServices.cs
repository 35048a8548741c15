// WCF service contracts for three services of dfdg-mock's catalog, in the shape svcutil
// generates with /messageContract /serializer:XmlSerializer from the welcome pack's WSDLs:
// message contracts carrying the two STAR SOAP headers, XmlSerializer types in the schemas'
// namespaces, the SOAPAction of each operation. Written by hand because Mono's own WSDL
// importer (svcutil) drops the SOAPAction, the headers and the fault of these WSDLs.
// Mono also serializes message headers with the DataContractSerializer whatever the
// contract says, which puts the headers' children in the wrong namespace; the headers are
// therefore wrapped in XmlSerialized<T>, which writes them with the XmlSerializer as .NET
// Framework does. Driven by tests/it/dotnet.rs through DfdgClient.cs.

using System;
using System.ServiceModel;
using System.Xml;
using System.Xml.Schema;
using System.Xml.Serialization;

namespace Star
{
    static class Ns
    {
        public const string ActiveOrganisation = "http://rep.oio.dk/ams.dk/xml/schemas/2005/09/01/";
        public const string RequestUserMetadata = "http://service.bm.dk/RequestUserMetadata/2015/01/21/";
        public const string RequestUserStructure = "http://service.bm.dk/pjaktass/2015/01/21/RequestUserStructure/";
        public const string RequestUserType = "http://service.bm.dk/pjaktass/2015/01/21/RequestUserTypeIdentifierCodeList/";
        public const string RequestOrganisation = "http://service.bm.dk/pjaktass/2015/01/21/RequestOrganisationStructure/";
        public const string CodeListBase = "http://service.bm.dk/pjaktass/2013/06/07/CodeListBase/";
        public const string Fault = "http://service.bm.dk/xml/schemas/2011/01/12/";
        public const string Jobcenter = "urn:dfdg-mock:JobcenterMessageService:2";
        public const string PersonStatus = "urn:dfdg-mock:PersonStatusService:20";
        public const string Jobnet = "urn:dfdg-mock:JobnetCitizenStatusService:10";
    }

    // A header value written by the XmlSerializer: WCF writes the header element, this writes
    // its children (in the namespaces their types declare).
    public class XmlSerialized<T> : IXmlSerializable
    {
        static readonly XmlSerializer Serializer = new XmlSerializer(typeof(T), new XmlRootAttribute("Value"));
        public T Value;

        public XmlSerialized() { }
        public XmlSerialized(T value) { Value = value; }

        public XmlSchema GetSchema() { return null; }

        public void WriteXml(XmlWriter writer)
        {
            var document = new XmlDocument();
            using (var into = document.CreateNavigator().AppendChild())
                Serializer.Serialize(into, Value);
            foreach (XmlNode child in document.DocumentElement.ChildNodes)
                if (child.NodeType == XmlNodeType.Element) child.WriteTo(writer);
        }

        public void ReadXml(XmlReader reader)
        {
            throw new NotSupportedException("request headers are only written");
        }
    }

    // ---- the STAR headers ----------------------------------------------------------------

    [XmlType(Namespace = Ns.ActiveOrganisation)]
    public class ActiveOrganisationHeaderType
    {
        [XmlElement(Order = 0)] public int OrganisationTypeIdentifier;
        [XmlElement(Order = 1)] public string OrganisationCode;
    }

    [XmlType(Namespace = Ns.CodeListBase)]
    public class CodeListItemIdentifierType
    {
        [XmlElement(Order = 0)] public int CodeListItemIdentifier;
    }

    [XmlType(Namespace = Ns.RequestUserType)]
    public class RequestUserTypeIdentifierType : CodeListItemIdentifierType { }

    [XmlType(Namespace = Ns.RequestUserStructure)]
    public class RequestUserStructureType
    {
        [XmlElement(Order = 0)] public string UserFullName;
        [XmlElement(Order = 1, Namespace = Ns.RequestUserType)] public RequestUserTypeIdentifierType RequestUserTypeIdentifier;
        [XmlElement(Order = 2)] public string UserIdentifier;
    }

    [XmlType(Namespace = Ns.RequestOrganisation)]
    public class RequestOrganisationStructureType
    {
        [XmlElement(Order = 0)] public CodeListItemIdentifierType OrganisationTypeIdentifier;
        [XmlElement(Order = 1)] public string OrganisationCode;
    }

    [XmlType(Namespace = Ns.RequestUserMetadata)]
    public class RequestUserMetadataType
    {
        [XmlElement(Order = 0, Namespace = Ns.RequestUserStructure)] public RequestUserStructureType RequestUserStructure;
        [XmlElement(Order = 1, Namespace = Ns.RequestOrganisation)] public RequestOrganisationStructureType RequestOrganisationStructure;
        [XmlElement(Order = 2)] public DateTime RegistrationDateTime;
    }

    // DFDG's fault detail. Mono reads fault details with the DataContractSerializer only (and
    // without a FaultContract fails on any detail), hence the data contract beside the
    // XmlSerializer attributes .NET Framework uses.
    [XmlType(Namespace = Ns.Fault)]
    [System.Runtime.Serialization.DataContract(Name = "FaultDetails", Namespace = Ns.Fault)]
    public class FaultDetails
    {
        [XmlElement(Order = 0)] [System.Runtime.Serialization.DataMember(Order = 0)] public int ErrorCode;
        [XmlElement(Order = 1, IsNullable = true)] [System.Runtime.Serialization.DataMember(Order = 1)] public string Message;
    }

    // ---- JobcenterMessageService (SOAP 1.1) -----------------------------------------------

    [XmlType(Namespace = Ns.Jobcenter)]
    public class ServiceReceiptType
    {
        [XmlElement(Order = 0)] public string MessageIdentifier;
        [XmlElement(Order = 1)] public DateTime EventDate;
    }

    [MessageContract(WrapperName = "SaveAvailabilityAssessment", WrapperNamespace = Ns.Jobcenter, IsWrapped = true)]
    public class SaveAvailabilityAssessmentRequest
    {
        [MessageHeader(Namespace = Ns.ActiveOrganisation)] public XmlSerialized<ActiveOrganisationHeaderType> ActiveOrganisationHeader;
        [MessageHeader(Namespace = Ns.RequestUserMetadata)] public XmlSerialized<RequestUserMetadataType> RequestUserMetadataHeader;
        [MessageBodyMember(Namespace = Ns.Jobcenter, Order = 0)] public string CivilRegistrationIdentifier;
        [MessageBodyMember(Namespace = Ns.Jobcenter, Order = 1)] public int AvailabilityAssessmentCode;
    }

    [MessageContract(WrapperName = "SaveAvailabilityAssessmentResponse", WrapperNamespace = Ns.Jobcenter, IsWrapped = true)]
    public class SaveAvailabilityAssessmentResponse
    {
        [MessageBodyMember(Namespace = Ns.Jobcenter, Order = 0)] public string ServiceRequestLogReferenceIdentifier;
        [MessageBodyMember(Namespace = Ns.Jobcenter, Order = 1)] public ServiceReceiptType ServiceReceipt;
    }

    [ServiceContract(Namespace = Ns.Jobcenter, Name = "JobcenterMessageService")]
    public interface IJobcenterMessageService
    {
        [XmlSerializerFormat]
        [OperationContract(Action = Ns.Jobcenter + "#SaveAvailabilityAssessment", ReplyAction = "*")]
        [FaultContract(typeof(FaultDetails), Name = "FaultDetails", Namespace = Ns.Fault)]
        SaveAvailabilityAssessmentResponse SaveAvailabilityAssessment(SaveAvailabilityAssessmentRequest request);
    }

    // ---- PersonStatusService (SOAP 1.1) ---------------------------------------------------

    [XmlType(Namespace = Ns.PersonStatus)]
    public class PersonStatusType
    {
        [XmlElement(Order = 0)] public string CivilRegistrationIdentifier;
    }

    [MessageContract(WrapperName = "GetVariablePersonStatus", WrapperNamespace = Ns.PersonStatus, IsWrapped = true)]
    public class GetVariablePersonStatusRequest
    {
        [MessageHeader(Namespace = Ns.ActiveOrganisation)] public XmlSerialized<ActiveOrganisationHeaderType> ActiveOrganisationHeader;
        [MessageHeader(Namespace = Ns.RequestUserMetadata)] public XmlSerialized<RequestUserMetadataType> RequestUserMetadataHeader;
        [MessageBodyMember(Namespace = Ns.PersonStatus, Order = 0)] public string CivilRegistrationIdentifier;
    }

    [MessageContract(WrapperName = "GetVariablePersonStatusResponse", WrapperNamespace = Ns.PersonStatus, IsWrapped = true)]
    public class GetVariablePersonStatusResponse
    {
        [MessageBodyMember(Namespace = Ns.PersonStatus, Order = 0)] public string ServiceRequestLogReferenceIdentifier;
        [MessageBodyMember(Namespace = Ns.PersonStatus, Order = 1)] public PersonStatusType PersonStatus;
    }

    [ServiceContract(Namespace = Ns.PersonStatus, Name = "PersonStatusService")]
    public interface IPersonStatusService
    {
        [XmlSerializerFormat]
        [OperationContract(Action = Ns.PersonStatus + "#GetVariablePersonStatus", ReplyAction = "*")]
        [FaultContract(typeof(FaultDetails), Name = "FaultDetails", Namespace = Ns.Fault)]
        GetVariablePersonStatusResponse GetVariablePersonStatus(GetVariablePersonStatusRequest request);
    }

    // ---- JobnetCitizenStatusService (SOAP 1.2) --------------------------------------------

    [XmlType(Namespace = Ns.Jobnet)]
    public class BorgerstatusType
    {
        [XmlElement(Order = 0)] public string CivilRegistrationIdentifier;
        [XmlElement(Order = 1)] public string JobnetStatusCode;
    }

    [MessageContract(WrapperName = "GetBorgerstatus", WrapperNamespace = Ns.Jobnet, IsWrapped = true)]
    public class GetBorgerstatusRequest
    {
        [MessageHeader(Namespace = Ns.ActiveOrganisation)] public XmlSerialized<ActiveOrganisationHeaderType> ActiveOrganisationHeader;
        [MessageHeader(Namespace = Ns.RequestUserMetadata)] public XmlSerialized<RequestUserMetadataType> RequestUserMetadataHeader;
        [MessageBodyMember(Namespace = Ns.Jobnet, Order = 0)] public string CivilRegistrationIdentifier;
    }

    [MessageContract(WrapperName = "GetBorgerstatusResponse", WrapperNamespace = Ns.Jobnet, IsWrapped = true)]
    public class GetBorgerstatusResponse
    {
        [MessageBodyMember(Namespace = Ns.Jobnet, Order = 0)] public string ServiceRequestLogReferenceIdentifier;
        [MessageBodyMember(Namespace = Ns.Jobnet, Order = 1)] public BorgerstatusType Borgerstatus;
    }

    [ServiceContract(Namespace = Ns.Jobnet, Name = "JobnetCitizenStatusService")]
    public interface IJobnetCitizenStatusService
    {
        [XmlSerializerFormat]
        [OperationContract(Action = Ns.Jobnet + "#GetBorgerstatus", ReplyAction = "*")]
        [FaultContract(typeof(FaultDetails), Name = "FaultDetails", Namespace = Ns.Fault)]
        GetBorgerstatusResponse GetBorgerstatus(GetBorgerstatusRequest request);
    }
}
